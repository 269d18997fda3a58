"""One shared order per table: how many of each dish."""

from __future__ import annotations

from django.db import models


class OrderLine(models.Model):
    table = models.SlugField(max_length=40)
    dish = models.CharField(max_length=40)
    quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["table", "dish"], name="one_line_per_dish")]

    def __str__(self) -> str:
        return f"{self.table}: {self.quantity} × {self.dish}"
