"""The storefront's pages (``catalog.views``), included at the site's root by config/urls.py."""

from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("parts/", views.part_list, name="part_list"),
    # A string, not <int:>: an id that is not a number gets the storefront's own 404 page.
    path("parts/<str:part_id>/", views.part_detail, name="part_detail"),
]
