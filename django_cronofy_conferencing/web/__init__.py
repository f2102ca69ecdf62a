"""Browser views: linking, the "My conferencing" page, the push notification receiver."""
