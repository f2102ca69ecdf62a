"""Browser flow: connect, callback, conferencing connect. (Being written: issue 3.)"""

from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse(status=501)


connect = callback = conferencing_connect = conferencing_return = _todo
