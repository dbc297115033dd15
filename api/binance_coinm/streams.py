"""Placeholder until its owner lands it."""

from fastapi import APIRouter

router = APIRouter()
