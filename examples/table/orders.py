"""The menu, and reading and changing a table's order in the database."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from .models import OrderLine

MENU: list[str] = ["Margherita", "Marinara", "Quattro formaggi", "Caesar salad", "Tiramisu", "Lemonade"]

#: Most of one dish a table may order.
MAX_QUANTITY = 20


def current_order(table: str) -> dict[str, int]:
    """``{dish: quantity}`` for the dishes on the table's order, in menu order."""
    lines = dict(OrderLine.objects.filter(table=table, quantity__gt=0).values_list("dish", "quantity"))
    return {dish: lines[dish] for dish in MENU if dish in lines}


def change_order(table: str, dish: str, delta: int) -> dict[str, int]:
    """Add (``delta=1``) or remove (``-1``) one ``dish``, kept between 0 and ``MAX_QUANTITY``."""
    with transaction.atomic():
        line, _ = OrderLine.objects.select_for_update().get_or_create(table=table, dish=dish)
        if 0 <= line.quantity + delta <= MAX_QUANTITY:
            OrderLine.objects.filter(pk=line.pk).update(quantity=F("quantity") + delta)
    return current_order(table)
