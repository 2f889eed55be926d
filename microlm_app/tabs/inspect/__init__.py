"""The pages of the Inspect tab, one widget per module; page.py holds what they share."""
