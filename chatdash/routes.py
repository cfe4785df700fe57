"""Route constants, so pages and redirects never spell a path twice."""

LOGIN = "/login"
ADMIN = "/admin"
CONVERSATIONS = "/admin/conversations"
SETTINGS = "/admin/settings"
WIDGET = "/widget"
INVITE = "/invite"
