"""The operator's controller: kopf handlers, a work queue and the reconcile pass.

Design, kubebuilder-style but on kopf:

* kopf watches InferenceServices and the kinds we own. It only *observes*: every
  handler is an event handler (no kopf progress annotations, no finalizers), so the
  operator never writes to the user's object except its status subresource.
* Children are kept in kopf indices fed by those watches, so a reconcile reads the
  live state from memory and its only API requests are the writes it needs.
* Every event (of the InferenceService or of an owned child) enqueues the owner's key
  in :mod:`.workqueue`, which runs at most one reconcile per key at a time, coalesces
  bursts and schedules the next pass when the rollout asks for one.
* :mod:`.reconcile` is one idempotent pass: decide (pure) -> build (pure) -> apply what
  differs -> prune what is no longer desired -> one status patch when it changed.
"""
