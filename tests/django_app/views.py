from asgiref.sync import async_to_sync
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from hubbub.layers import get_channel_layer

from .models import Thumbnail


def home(request):
    user = request.user
    return HttpResponse(f"home: {user.get_username() if user.is_authenticated else 'anonymous'}")


@csrf_exempt  # called by scripts in the tests
@require_POST
def make_thumbnail(request, name):
    """Hands the work to the ``thumbnails`` worker and answers at once."""
    async_to_sync(get_channel_layer().send)("thumbnails", {"type": "thumbnails.make", "name": name, "size": 128})
    return JsonResponse({"queued": name}, status=202)


def thumbnails(request):
    return JsonResponse({"done": list(Thumbnail.objects.order_by("name").values_list("name", flat=True))})


def echo_page(request):
    return render(request, "django_app/echo.html")
