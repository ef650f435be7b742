"""The battery schedule, in parts that import only what they need.

- :mod:`device.plan.model`: what a plan depends on and what it is (``Battery``, ``Rules``,
  ``ModeRequest``, ``Inputs``, ``Plan``, ``Setpoint``); numpy only.
- :mod:`device.plan.baseline`: the inverter's own self-consumption rule, the plans that need no
  optimisation, and the counterfactual of accounting; numpy only.
- :mod:`device.plan.setpoints`: the controller's action for each planned slot.
- :mod:`device.plan.lp`: the linear program, solved with HiGHS.
- :mod:`device.plan.schedule`: :func:`~device.plan.schedule.plan`, the entry point: the mode
  decides between a fixed plan and the LP.

Nothing is imported here, so a module that needs only the baseline (accounting) or the types
(controller) never loads HiGHS. The app's re-planning service, which drives this package, the
controller and the settlement, is :mod:`device.replanning`, outside it: the controller and the
accounting import the plan types, so the package must not import them back.
"""
