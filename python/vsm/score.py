"""Classical score-matching estimators (MATH.md Part II); being written."""
