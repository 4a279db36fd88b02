"""Attribution maths on tensors only: no registry, no backend, no trace (each function is tested on tiny
hand-built models with closed-form answers)."""
