"""Client messages, server events, IOPub translation."""
