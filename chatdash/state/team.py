"""Settings → Team (the owner's): members, invites, removal, password resets;
and the public invite page, where an invited agent sets a password."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import reflex as rx

from chatdash import routes
from chatdash.models import Role
from chatdash.services import team
from chatdash.services.auth import AuthError
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event


@dataclasses.dataclass
class TeamRow:
    id: int = 0
    name: str = ""
    email: str = ""
    role: str = ""
    initials: str = ""
    pending: bool = False


def _link(token: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}{routes.INVITE}?t={token}"


class TeamState(AuthState):
    members: list[TeamRow] = []
    invite_email: str = ""
    invite_name: str = ""
    team_error: str = ""
    # A one-time link just made (an invite or a reset), shown once to the owner.
    new_link: str = ""
    new_link_for: str = ""

    @admin_event(role=Role.OWNER)
    async def load(self):
        await self._read()
        self.team_error = ""
        self.new_link = ""

    async def _read(self) -> None:
        found = await asyncio.to_thread(team.members)
        self.members = [TeamRow(m.id, m.name, m.email, m.role, m.initials, m.pending) for m in found]

    @admin_event(role=Role.OWNER)
    def set_invite_email(self, value: Any):
        self.invite_email = str(value)[:321]

    @admin_event(role=Role.OWNER)
    def set_invite_name(self, value: Any):
        self.invite_name = str(value)[:201]

    @admin_event(role=Role.OWNER)
    async def invite(self):
        try:
            member, token = await asyncio.to_thread(team.invite, self.invite_email, self.invite_name)
        except AuthError as exc:
            self.team_error = str(exc)
            return
        self.team_error = ""
        self.invite_email = self.invite_name = ""
        self.new_link, self.new_link_for = _link(token), member.email
        await self._read()

    @admin_event(role=Role.OWNER)
    async def reset_password(self, admin_id: Any):
        await self._change(team.reset_link, admin_id)

    @admin_event(role=Role.OWNER)
    async def remove(self, admin_id: Any):
        await self._change(team.remove, admin_id)

    async def _change(self, use_case, admin_id: Any) -> None:
        try:
            result = await asyncio.to_thread(use_case, self._checked_admin.id, admin_id)
        except AuthError as exc:
            self.team_error = str(exc)
            return
        self.team_error = ""
        if isinstance(result, tuple):  # a reset: (member, token)
            member, token = result
            self.new_link, self.new_link_for = _link(token), member.email
        else:
            self.new_link = ""
        await self._read()


class InviteState(rx.State):
    """The invite page (no session yet): whom the link is for, and why a
    password was refused. The password itself goes to /api/admin/invite."""

    invite_token: str = ""
    invite_email: str = ""
    invite_name: str = ""
    invite_error: str = ""
    invite_valid: bool = False

    @rx.event
    async def load(self):
        from chatdash.api.team_invite import INVITE_ERRORS

        params = self.router.url.query_parameters
        token = str(params.get("t", ""))[:200]
        pending = await asyncio.to_thread(team.check_link, token)
        self.invite_valid = pending is not None
        self.invite_token = token if pending else ""
        self.invite_email = pending.email if pending else ""
        self.invite_name = pending.name if pending else ""
        code = str(params.get("error", ""))[:20]
        self.invite_error = INVITE_ERRORS.get(code, "") if pending else INVITE_ERRORS["expired"]

    @rx.var
    def invite_action(self) -> str:
        return f"{get_settings().api_url.rstrip('/')}/api/admin/invite"
