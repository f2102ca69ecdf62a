"""Push notification receiver. (Being written: issue 5.)"""

from django.http import HttpResponse


def receive(request):
    return HttpResponse(status=501)
