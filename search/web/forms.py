"""Forms for the search page and the search API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django import forms
from django.contrib.auth import get_user_model
from django.http import QueryDict

from documents.models import Document
from search.ranking.backends import SearchFilters, SearchMode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from django.core.files.uploadedfile import UploadedFile
    from django.utils.datastructures import MultiValueDict

MAX_PAGE: Final = 100
MAX_K: Final = 100
MAX_TAGS: Final = 20
TAG_MAX_LENGTH: Final = 64

SORT_CHOICES: Final = [("relevance", "Relevance"), ("date", "Newest first")]
RERANK_CHOICES: Final = [("", "Re-rank: default"), ("1", "Re-rank: on"), ("0", "Re-rank: off")]
_SWITCH_VALUES: Final = {
    "1": True,
    "true": True,
    "on": True,
    "yes": True,
    "0": False,
    "false": False,
    "off": False,
    "no": False,
}
#: Fields that narrow the result set (the "Filters" panel of the page).
FILTER_FIELDS: Final = ("tag", "source_type", "language", "owner", "date_from", "date_to")
#: Applied when a parameter is absent or blank, so that a bound form shows
#: (and cleans to) the same choice as an untouched one.
_DEFAULTS: Final = {"mode": SearchMode.HYBRID.value, "sort": "relevance"}


class TagInput(forms.TextInput):
    """One text box for tags: reads ``?tag=a&tag=b`` as well as ``?tag=a,b``."""

    def value_from_datadict(
        self, data: Mapping[str, Any], files: MultiValueDict[str, UploadedFile], name: str
    ) -> list[str]:
        getlist = getattr(data, "getlist", None)
        raw = getlist(name) if getlist is not None else data.get(name) or []
        values = [raw] if isinstance(raw, str) else list(raw)
        return [part for value in values for part in str(value).split(",")]

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, list | tuple):
            return ", ".join(str(v).strip() for v in value if str(v).strip())
        return super().format_value(value)


class TagsField(forms.Field):
    """Tags as stored on documents: stripped, lower-cased, de-duplicated."""

    widget = TagInput

    def to_python(self, value: Any) -> list[str]:
        values = [value] if isinstance(value, str) else list(value or [])
        tags: dict[str, None] = {}
        for raw in values:
            if tag := str(raw).strip().lower():
                tags.setdefault(tag)
        return list(tags)

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if any("\x00" in tag for tag in value):
            raise forms.ValidationError("Null characters are not allowed.", code="null_characters")
        if len(value) > MAX_TAGS:
            raise forms.ValidationError(
                "Use at most %(max)d tags.", code="max_tags", params={"max": MAX_TAGS}
            )
        if too_long := [tag for tag in value if len(tag) > TAG_MAX_LENGTH]:
            raise forms.ValidationError(
                "Tags are at most %(max)d characters long: %(tag)s.",
                code="tag_too_long",
                params={"max": TAG_MAX_LENGTH, "tag": too_long[0][:TAG_MAX_LENGTH] + "…"},
            )


class SwitchField(forms.Field):
    """An optional on/off switch: 1/true/on/yes or 0/false/off/no; blank is None."""

    widget = forms.Select(choices=RERANK_CHOICES)

    def to_python(self, value: Any) -> bool | None:
        text = str(value or "").strip().lower()
        if not text:
            return None
        if text not in _SWITCH_VALUES:
            raise forms.ValidationError("Use 1 or 0 (on or off).", code="invalid_switch")
        return _SWITCH_VALUES[text]


class SearchForm(forms.Form):
    """What a search asks for: the query, the mode, filters and the page."""

    q = forms.CharField(required=False, label="Query")
    mode = forms.TypedChoiceField(
        choices=[(mode.value, mode.value.capitalize()) for mode in SearchMode],
        coerce=SearchMode,
        empty_value=SearchMode.HYBRID,
        required=False,
        widget=forms.RadioSelect,
    )
    tag = TagsField(
        required=False, label="Tags", widget=TagInput(attrs={"placeholder": "comma, separated"})
    )
    source_type = forms.MultipleChoiceField(
        choices=Document.SourceType.choices,
        required=False,
        label="Source type",
        widget=forms.CheckboxSelectMultiple,
    )
    language = forms.MultipleChoiceField(
        choices=Document.Language.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    owner: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None,  # Set in __init__: the user model is not ready at import.
        to_field_name="username",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "username"}),
        error_messages={"invalid_choice": "No user is named “%(value)s”."},
    )
    date_from = forms.DateField(
        required=False, label="Updated from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="Updated until", widget=forms.DateInput(attrs={"type": "date"})
    )
    sort = forms.TypedChoiceField(choices=SORT_CHOICES, empty_value="relevance", required=False)
    #: Re-order the top candidates with the cross-encoder (None: RERANK_DEFAULT).
    rerank = SwitchField(required=False, label="Re-rank")
    page = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False)
    #: Results per page; offered by the API only.
    k = forms.IntegerField(min_value=1, max_value=MAX_K, required=False)

    def __init__(self, data: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if data is not None:
            data = data.copy() if isinstance(data, QueryDict) else dict(data)
            for name, value in _DEFAULTS.items():
                if not data.get(name):
                    data[name] = value
        super().__init__(data, **kwargs)
        self.fields["owner"].queryset = get_user_model().objects.all()  # type: ignore[attr-defined]

    def clean_page(self) -> int:
        return self.cleaned_data.get("page") or 1

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    @property
    def has_filters(self) -> bool:
        """Whether any filter was asked for (the page opens its filter panel)."""
        return any(self.data.get(name) for name in FILTER_FIELDS)

    def to_filters(self) -> SearchFilters:
        """The filters of a valid form, for the search selectors."""
        if not self.is_valid():
            raise ValueError("to_filters() needs a valid form; check is_valid() first.")
        data = self.cleaned_data
        owner = data.get("owner")
        return SearchFilters(
            tags=tuple(data.get("tag") or ()),
            source_types=tuple(data.get("source_type") or ()),
            languages=tuple(data.get("language") or ()),
            owners=(owner.pk,) if owner is not None else (),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


class ResultClickForm(forms.Form):
    """The ``?from_search=<log id>&rank=<n>`` a result link carries."""

    from_search = forms.IntegerField(min_value=1)
    rank = forms.IntegerField(min_value=1, max_value=2**31 - 1, required=False)


#: Expiry choices offered on the API tokens page, in days ("" never expires).
TOKEN_EXPIRY_CHOICES: Final = [
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("", "Never"),
]


class ApiTokenForm(forms.Form):
    """A new API token: what it is for and how long it lives."""

    name = forms.CharField(
        max_length=100,
        strip=True,
        help_text="What the token is for, e.g. “wiki bot”.",
    )
    expires_in_days = forms.TypedChoiceField(
        choices=TOKEN_EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        initial="90",
        label="Expires after",
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if "\x00" in name:
            raise forms.ValidationError("Null characters are not allowed.", code="null_characters")
        return name
