"""Choosing a table, and a table's page with its current order."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from demo.names import clean_name, ensure_visitor_name
from demo.pages import go_to_clean_name

from .orders import MENU, current_order


def pick_table(request: HttpRequest) -> HttpResponse:
    """The table picker; ``?table=`` goes to that table."""
    if "table" in request.GET:
        return go_to_clean_name(request, request.GET["table"], "table", "table_id", "pick_table", "table id")
    return render(request, "table/pick.html")


def table(request: HttpRequest, table_id: str) -> HttpResponse:
    """A table's page, showing the order as it stands (the socket keeps it current)."""
    if clean_name(table_id) != table_id:
        return go_to_clean_name(request, table_id, "table", "table_id", "pick_table", "table id")
    context = {
        "table_id": table_id,
        "name": ensure_visitor_name(request),
        "menu": MENU,
        "order": current_order(table_id),
    }
    return render(request, "table/table.html", context)
