import reflex as rx

config = rx.Config(app_name="chatdash", telemetry_enabled=False)
