"""The platform's accounts app: users, book collaborators and translation assignments."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    display_name = models.CharField(max_length=150, blank=True)
    bio = models.TextField(blank=True)
    preferred_language = models.ForeignKey("books.Language", null=True, blank=True, on_delete=models.SET_NULL)
    avatar = models.FileField(upload_to="images/avatars/", blank=True)


class BookCollaborator(models.Model):
    ROLES = [("co_author", "Co-author"), ("editor", "Editor"), ("translator", "Translator"),
             ("proofreader", "Proofreader")]

    book = models.ForeignKey("books.Book", on_delete=models.CASCADE)
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, choices=ROLES)
    permissions = models.JSONField(default=list, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = [("book", "user")]


class TranslationAssignment(models.Model):
    STATUS = [("pending", "Pending"), ("in_progress", "In progress"), ("review", "Review"),
              ("done", "Done"), ("rejected", "Rejected")]

    chapter = models.ForeignKey("books.Chapter", on_delete=models.CASCADE)
    translator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="translation_assignments")
    assigned_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="assigned_translations")
    target_language = models.ForeignKey("books.Language", on_delete=models.PROTECT)
    status = models.CharField(max_length=20, choices=STATUS, default="pending")
    due_date = models.DateField(null=True, blank=True)
    time_spent = models.DurationField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
