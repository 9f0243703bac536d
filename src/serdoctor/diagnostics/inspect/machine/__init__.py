"""The opcode machine: the pickle virtual machine run on symbolic values.

``_opcodes`` decodes the opcode stream, ``_sim`` drives the loop, ``_ops``,
``_containers`` and ``_calls`` handle the opcodes, ``_special`` knows the
rebuild functions of pickle, cloudpickle, dill and serdoctor, ``_state`` holds
the stack, memo and findings, ``_nodes`` are the symbolic values and ``_expr``
renders them as Python-like expressions.
"""
