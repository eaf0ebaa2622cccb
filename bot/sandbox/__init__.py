"""`python -m bot sandbox`: the whole product on 127.0.0.1, with no accounts."""
