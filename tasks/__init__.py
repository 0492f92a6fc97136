"""Self-supervised task heads, one file each. A new ``tasks/<name>.py`` that registers
a :class:`elo.model.heads.TaskHead` subclass with ``@TASKS.register()`` joins the search
space with no other edit. Files starting with ``_`` are machinery, not tasks."""
