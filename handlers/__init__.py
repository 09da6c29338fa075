"""Plug-ins: ``sources`` turn what senders send into CloudEvents, ``actions`` verify deployments."""
