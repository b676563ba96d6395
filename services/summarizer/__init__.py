"""The summarizer agent service."""
