from django.db import models


class Headline(models.Model):
    room = models.CharField(max_length=50)
    title = models.CharField(max_length=200)
