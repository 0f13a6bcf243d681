"""The platform's books app: languages, authors, books, chapters and their media and logs."""
import uuid

from django.conf import settings
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    bio = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class Book(models.Model):
    STATUS = [("draft", "Draft"), ("ongoing", "Ongoing"), ("completed", "Completed"), ("hiatus", "Hiatus")]

    title = models.CharField(max_length=300)
    slug = models.SlugField(max_length=300, unique=True)
    description = models.TextField(blank=True)
    author = models.ForeignKey(Author, on_delete=models.PROTECT)
    language = models.ForeignKey("Language", on_delete=models.PROTECT)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=STATUS, default="draft")
    cover_image = models.FileField(upload_to="images/covers/", blank=True)
    rating = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    word_count = models.PositiveIntegerField(default=0)
    is_published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    related_books = models.ManyToManyField("self", symmetrical=False, blank=True)


class Chapter(models.Model):
    STATUS = [("draft", "Draft"), ("scheduled", "Scheduled"), ("published", "Published"), ("archived", "Archived")]

    id = models.BigAutoField(primary_key=True)
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=300)
    content_file = models.FileField(upload_to="content/", max_length=255, blank=True)
    word_count = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=STATUS, default="draft")
    translated_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        unique_together = [("book", "number")]


class Language(models.Model):
    code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=100)


class ChapterMedia(models.Model):
    TYPES = [("image", "Image"), ("audio", "Audio"), ("video", "Video"), ("document", "Document")]

    chapter = models.ForeignKey(Chapter, on_delete=models.CASCADE)
    media_type = models.CharField(max_length=20, choices=TYPES)
    file = models.FileField(upload_to="media/", max_length=255)
    caption = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class ChangeLog(models.Model):
    ACTIONS = [("create", "Create"), ("update", "Update"), ("publish", "Publish"),
               ("unpublish", "Unpublish"), ("media", "Media")]

    id = models.BigAutoField(primary_key=True)
    chapter = models.ForeignKey(Chapter, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    change_id = models.UUIDField(default=uuid.uuid4, unique=True)
    action = models.CharField(max_length=20, choices=ACTIONS)
    diff = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class BookFile(models.Model):
    FORMATS = [("epub", "EPUB"), ("pdf", "PDF"), ("txt", "Text")]

    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    file = models.FileField(upload_to="media/books/", max_length=255)
    format = models.CharField(max_length=10, choices=FORMATS)
    checksum = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField()
