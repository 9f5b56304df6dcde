"""Sign-up by invite, login and GetMe: the path every other test builds on."""

from __future__ import annotations

from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.tenants.conftest import PASSWORD, Stack


async def test_invite_signup_login_and_me(stack: Stack) -> None:
    owner = await stack.new_tenant("smoke")
    assert owner.user.role == pb.ROLE_OWNER
    me = await stack.stub.GetMe(pb.GetMeRequest(), metadata=owner.meta)
    assert me.user.email == owner.email and me.effective_role == pb.ROLE_OWNER
    login = await stack.stub.Login(pb.LoginRequest(email=owner.email, password=PASSWORD))
    assert login.tokens.access_token and login.user.id == owner.user.id
    settings = await stack.stub.GetSettings(pb.GetSettingsRequest(), metadata=owner.meta)
    assert settings.settings.session_lifetime.seconds == 7 * 24 * 3600
    templates = await stack.stub.ListTemplates(pb.ListTemplatesRequest(), metadata=owner.meta)
    assert {t.name for t in templates.templates} == {"conservative", "moderate", "aggressive"}
