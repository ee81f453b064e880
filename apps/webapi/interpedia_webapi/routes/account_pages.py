"""Sign-up, sign-in, account, API-key and user-admin pages. Their forms call the JSON API
(`routes/users.py`) from `static/account.js`; registered before `pages` so these paths are
not read as a model's or source's."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from interpedia_webapi.deps import CSRF_COOKIE, SESSION_COOKIE, OptionalUser
from interpedia_webapi.routes.pages import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "sign.html", {"mode": "signup", "title": "Sign up"})


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "sign.html", {"mode": "signin", "title": "Sign in"})


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, user: OptionalUser) -> HTMLResponse:
    """The signed-in user's profile and password forms; a dead session's cookies are dropped."""
    page = TEMPLATES.TemplateResponse(request, "account.html", {"user": user})
    if user is None and SESSION_COOKIE in request.cookies:
        page.delete_cookie(SESSION_COOKIE, path="/")
        page.delete_cookie(CSRF_COOKIE, path="/")
    return page


@router.get("/account/keys", response_class=HTMLResponse)
async def account_keys_page(request: Request) -> HTMLResponse:
    """Filled in by the page's script, with the cookie or the key box's key."""
    return TEMPLATES.TemplateResponse(request, "account_keys.html", {})


@router.get("/admin/users", response_class=HTMLResponse)
async def admin_users_page(request: Request) -> HTMLResponse:
    """Filled in by the page's script: the API answers 401/403 to anyone but an admin."""
    return TEMPLATES.TemplateResponse(request, "admin_users.html", {})
