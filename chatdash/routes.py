"""Route constants, so pages and redirects never spell a path twice."""

LOGIN = "/login"
ADMIN = "/admin"
CONVERSATIONS = "/admin/conversations"
VISITORS = "/admin/visitors"
SETTINGS = "/admin/settings"
WIDGET = "/widget"
INVITE = "/invite"
