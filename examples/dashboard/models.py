"""A small clinic: patients, and visits that are active until they end."""

from __future__ import annotations

from django.db import models


class Patient(models.Model):
    name = models.CharField(max_length=80)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Visit(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="visits")
    reason = models.CharField(max_length=120)
    started = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.patient}: {self.reason}"
