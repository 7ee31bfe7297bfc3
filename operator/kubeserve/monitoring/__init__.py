"""Acting on the serving metrics: input drift (:mod:`.drift` decides, :mod:`.psi` reads,
:mod:`.webhook` tells a retraining pipeline)."""
