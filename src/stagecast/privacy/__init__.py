"""Privacy: data exports, erasure, the Do Not Sell opt-out, retention of personal data."""
