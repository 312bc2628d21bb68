"""``imc-sim devices``: list the shipped device profiles, show one, or fit one to measurements.

``show`` prints a profile's parameters and draws its noise and drift; ``fit`` fits a profile to
measured conductances (``devices fit MEASUREMENTS --family pcm --out my-device.yaml``)."""

from __future__ import annotations

import argparse

from imc_sim.cli.numbers import positive_float

TABLE_TIMES = "1s,1h,1d,1w,30d,1y,10y"
ACTIONS = {"list": "list the shipped device profiles (the default)",
           "show": "print a profile's parameters and draw its noise and drift",
           "fit": "fit a profile to measured conductances"}


def _add_options(p: argparse.ArgumentParser, default: object) -> None:
    """--plot, --family, --out, --g-max, --t0 and --t-read, each ``default`` when not given (``run``
    checks which apply)."""
    p.add_argument("--plot", default=default, help="figure to write (.png, .pdf, .svg) for show "
                   "(default device-NAME.png) or fit (default none)")
    p.add_argument("--family", default=default, help="device family to fit (fit): pcm or state-independent")
    p.add_argument("--out", default=default, help="profile YAML to write (fit)")
    p.add_argument("--g-max", type=float, default=default,
                   help="g_max in uS for fit (default: the largest target)")
    p.add_argument("--t0", type=positive_float, default=default,
                   help="fit: the drift law's reference time t0 in s, L(t) = ln((t + t0) / t0) "
                        "(default 20, aihwkit's PCM; pcm-chip's HERMES fit uses 200)")
    p.add_argument("--t-read", type=positive_float, default=default,
                   help="fit: the duration of one read in s, in the 1/f read noise (default 250e-9)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list device profiles, show one (parameters and a PNG), or fit one",
                       description=__doc__.splitlines()[0])
    _add_options(p, None)
    # an action's own parser, so that its options may come before or after its positional (argparse
    # fills two optional positionals of one parser from the words before the first option)
    actions = p.add_subparsers(dest="action", title="actions")
    for name, text in ACTIONS.items():
        action = actions.add_parser(name, help=text, description=f"imc-sim devices {name}: {text}.")
        action.add_argument("profile", nargs="?", help="profile name or YAML path (for show); "
                            "measurements CSV / JSON lines (for fit)")
        _add_options(action, argparse.SUPPRESS)  # not given after the action: as given before it
    p.set_defaults(action="list", profile=None, run=run)


def _list() -> int:
    from imc_sim.devices.profile import load_profile, shipped_profiles
    from imc_sim.table import format_table

    rows = []
    for name in shipped_profiles():
        profile = load_profile(name)
        text = profile.description
        rows.append([name, profile.model, text if len(text) <= 90 else text[:87] + "..."])
    print(format_table(["name", "model", "description"], rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml

    from imc_sim.cli.outputs import check_output_paths
    from imc_sim.devices.characterize import drift_curves, programming_sigma
    from imc_sim.devices.plots import plot_device
    from imc_sim.devices.profile import load_profile
    from imc_sim.errors import ImcSimError
    from imc_sim.table import format_table
    from imc_sim.units import format_time, parse_times

    if not args.profile:
        raise ImcSimError("devices show needs a profile name or YAML path")
    profile = load_profile(args.profile)
    out = args.plot or f"device-{profile.name}.png"
    check_output_paths(args, {"--plot": out})
    print(f"# {profile.path}: a profile file of these values (copy it to edit them)")
    print(yaml.safe_dump(profile.document(), sort_keys=False).rstrip())
    table = drift_curves(profile, parse_times(TABLE_TIMES))
    rows = [[f"{level} g_max", *(f"{v:.3f}" for v in values)] for level, values in table["levels"].items()]
    print("\nmean g(t) / g(programmed), Monte Carlo through the aihwkit noise model:")
    print(format_table(["state", *(format_time(t) for t in table["times"])], rows))
    plot_device(profile.name, programming_sigma(profile), drift_curves(profile), out)
    print(f"wrote {out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from imc_sim.cli.outputs import check_output_paths
    from imc_sim.devices.fit import fit_measurements
    from imc_sim.devices.fit_plots import plot_fit
    from imc_sim.devices.fit_profile import fit_report, write_fitted_profile
    from imc_sim.devices.measurements import read_measurements
    from imc_sim.errors import ImcSimError

    if not (args.profile and args.family and args.out):
        raise ImcSimError("devices fit needs MEASUREMENTS, --family and --out "
                          "(imc-sim devices fit data.csv --family pcm --out my-device.yaml)")
    check_output_paths(args, {"--out": args.out, "--plot": args.plot})
    times = {name: value for name, value in (("t0", args.t0), ("t_read", args.t_read)) if value is not None}
    fit = fit_measurements(read_measurements(args.profile), args.family, g_max=args.g_max, **times)
    print(fit_report(fit))
    write_fitted_profile(fit, args.out, args.profile)
    print(f"wrote {args.out}")
    if args.plot:
        plot_fit(fit, args.plot)
        print(f"wrote {args.plot}")
    return 0


def run(args: argparse.Namespace) -> int:
    from imc_sim.errors import ImcSimError

    if args.action == "fit":
        return _fit(args)
    if args.family or args.out or any(v is not None for v in (args.g_max, args.t0, args.t_read)):
        raise ImcSimError(f"--family, --out, --g-max, --t0 and --t-read apply to devices fit only, "
                          f"not to devices {args.action}")
    if args.action == "show":
        return _show(args)
    if args.profile:
        raise ImcSimError(f"devices list takes no profile (got {args.profile!r}); "
                          f"use: imc-sim devices show {args.profile}")
    if args.plot:
        raise ImcSimError("--plot applies to devices show only, not to devices list")
    return _list()
