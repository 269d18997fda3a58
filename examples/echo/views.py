from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def echo(request: HttpRequest) -> HttpResponse:
    """Both echo sockets side by side: the synchronous one and the timestamped one."""
    return render(request, "echo/echo.html")
