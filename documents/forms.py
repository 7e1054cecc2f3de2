"""Forms for content managers: upload or type a document."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.postgres.forms import SimpleArrayField

from documents.ingestion import ExtractedText, ExtractionError, extract_text
from documents.models import Document
from documents.services import document_save


class DocumentAdminForm(forms.ModelForm):
    """Admin form: a document is either typed in or read from an uploaded file."""

    upload = forms.FileField(
        required=False,
        help_text="A .txt, .md, .csv, .html, .pdf, .docx, .hwp or .hwpx file. Its text "
        "replaces the text below; the title is taken from the file when left empty.",
    )
    tags = SimpleArrayField(
        forms.CharField(max_length=64),
        required=False,
        help_text="Comma-separated tags or collections.",
    )

    class Meta:
        model = Document
        fields = ["title", "text", "upload", "tags", "owner", "groups"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("title", "text"):
            # Absent when the admin shows the form read-only (view permission only).
            if name in self.fields:
                self.fields[name].required = False
        self.extracted: ExtractedText | None = None

    def clean_upload(self) -> Any:
        upload = self.cleaned_data.get("upload")
        if not upload:
            return upload
        limit = settings.DOCUMENTS_MAX_FILE_MB * 1024 * 1024
        if upload.size > limit:
            raise forms.ValidationError(
                f"File too large: {upload.size / 1048576:.1f} MB exceeds the "
                f"{settings.DOCUMENTS_MAX_FILE_MB} MB limit."
            )
        data = upload.read()
        upload.seek(0)
        try:
            self.extracted = extract_text(data, filename=upload.name, max_bytes=limit)
        except ExtractionError as exc:
            raise forms.ValidationError(f"Could not read {upload.name}: {exc}.") from exc
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.extracted is not None:
            cleaned["text"] = self.extracted.text
            cleaned["title"] = cleaned.get("title") or self.extracted.title
        if not (cleaned.get("title") or "").strip():
            self.add_error("title", "Give a title or upload a file.")
        if not (cleaned.get("text") or "").strip() and self.extracted is None:
            self.add_error("text", "Type the text or upload a file.")
        return cleaned

    def save(self, commit: bool = True) -> Document:
        """The document with the form's values; saved through ``document_save``.

        The admin asks for ``commit=False`` and saves the instance itself
        (``DocumentAdmin.save_model``), through the same write path.
        """
        document: Document = super().save(commit=False)
        if self.extracted is not None:
            document.source_type = self.extracted.source_type
            upload = self.cleaned_data["upload"]
            document.original_filename = upload.name[-500:]
            document.file = upload
        if commit:
            document_save(document=document)
            self.save_m2m()
        return document
