"""Calibration and validation of the model against a lab (docs/calibration.md).

- :mod:`hcisim.calibration.cases`: the lab-sized scenarios every experiment and validation
  case runs;
- :mod:`hcisim.calibration.experiments`: the experiments and what each trial measured;
- :mod:`hcisim.calibration.fit`: the fits, each through the model's own mechanism;
- :mod:`hcisim.calibration.campaign`: ``hcisim calibrate`` (run, fit, write a profile);
- :mod:`hcisim.calibration.validate`: ``hcisim validate`` (a matrix that is not the
  calibration set, model against lab).

The profile file itself (schema, loader, the shipped default) is
:mod:`hcisim.scenario.profile`: a scenario reads it while it is validated.
"""
