"""What a job leaves: mirrored results, signed links, previews, webhooks and callback checks."""
