"""Packaged NLU data: demo training examples, generator templates and the evaluation set."""
