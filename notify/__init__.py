"""What notifying needs besides the escalation itself: settings, channels, message texts,
signed acknowledge links, and the record of every message and delivery attempt."""
