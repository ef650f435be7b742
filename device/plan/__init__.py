"""The battery schedule, in parts that import only what they need.

- :mod:`device.plan.model`: what a plan depends on and what it is (``Battery``, ``Rules``,
  ``ModeRequest``, ``Inputs``, ``Plan``, ``Setpoint``); numpy only.
- :mod:`device.plan.baseline`: the inverter's own self-consumption rule, the plans that need no
  optimisation, and the counterfactual of accounting; numpy only.
- :mod:`device.plan.setpoints`: the controller's action for each planned slot.
- :mod:`device.plan.lp`: the linear program, solved with HiGHS.
- :mod:`device.plan.schedule`: :func:`~device.plan.schedule.plan`, the entry point: the mode
  decides between a fixed plan and the LP.
- :mod:`device.plan.replanning`: the app's re-planning service: gathers prices, forecasts and the
  battery state from the store, re-plans when they or the homeowner's settings change, and hands
  the plan to the controller.

Nothing is imported here, so a module that needs only the baseline (accounting) or the types
(controller) never loads HiGHS.
"""
