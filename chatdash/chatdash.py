import reflex as rx

class S(rx.State):
    n: int = 0
    @rx.event
    def inc(self):
        self.n += 1

def index():
    return rx.vstack(rx.heading("hello"), rx.button("inc", on_click=S.inc), rx.text(S.n))

app = rx.App()
app.add_page(index)
