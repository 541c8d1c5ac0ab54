"""Not written yet: the learner issue fills this module."""


def save(*args, **kwargs):
    raise NotImplementedError("the learner has not landed yet")
