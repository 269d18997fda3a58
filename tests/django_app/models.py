from django.db import models


class Thumbnail(models.Model):
    """Written by the ``thumbnails`` background consumer, so tests can see the worker ran."""

    name = models.CharField(max_length=100)
    size = models.IntegerField(default=0)


class Note(models.Model):
    text = models.CharField(max_length=200)


class Book(models.Model):
    """Served by djangochannelsrestframework's consumers in tests/test_thirdparty_dcrf.py."""

    title = models.CharField(max_length=200)
    author = models.CharField(max_length=200)
