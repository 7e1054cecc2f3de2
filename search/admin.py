"""Admin for API tokens: a token acts as its user, so only superusers manage others'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from search.models import ApiToken
from search.services import api_token_issue

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for the JSON API. A token acts as its user, so only superusers
    may make or see tokens for other people; the key is shown once, on creation.
    """

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name", "expires_at")
        return ("user", "name", "prefix", "created_at", "last_used_at", "expires_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiToken | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else ("user", "prefix", "created_at", "last_used_at")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            kwargs["initial"] = request.user.pk
            if not request.user.is_superuser:
                kwargs["queryset"] = get_user_model().objects.filter(
                    username=request.user.get_username()
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        if obj.user_id != request.user.pk and not request.user.is_superuser:
            raise PermissionDenied
        key = api_token_issue(obj)
        messages.warning(
            request,
            f"The key of {obj.name!r} is {key} . Copy it now: it is stored only as a "
            "digest and cannot be shown again. Send it as 'Authorization: Bearer <key>'.",
        )
