"""The workflow's configuration, checked and completed: the schema's defaults filled, presets and
built-in corpora merged under what the user set, and the rules across keys that a schema cannot
say. Every failure is one ``ConfigError`` naming the key, raised before any job runs.

The workflow folder holds the schema (``schemas/config.schema.yaml``), the presets
(``presets/*.yaml``, experiments with their published numbers) and the built-in corpora
(``corpora/*.yaml``). A preset or corpus of the same name in the config is overridden by the keys
the user set, and only those: defaults never hide a preset's value.
"""

import copy
import math
from pathlib import Path

import yaml

from rnnlm.io import RnnlmError

# An experiment is a folder under results/, beside these reserved ones.
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
RESERVED = ("benchmarks", "data", "logs", "plots", "sweeps", "tunes")
PUBLISHED_KEYS = ("valid", "test", "source")
NAME_MAX = 255  # bytes in one path component (Linux, macOS, Windows filesystems alike)


class ConfigError(RnnlmError):
    def __init__(self, key, problem, where="see workflow/schemas/config.schema.yaml"):
        super().__init__(f"config key {key or '(top level)'}: {problem} ({where})")


def typed(value, schema, root=None):
    """``value`` as the schema types it: a string read as YAML where the schema allows more than
    strings (`--config` reads nested scalars as strings: `experiments={tutorial: {epochs: 3}}`
    gives '3', a sweep's grid `{lr: [0.5, 1]}` gives ['0.5', '1']; files are already typed), and
    a whole number written as a float (2.0) as the int it is where the schema asks for an
    integer, so that its params and paths are those of 2. A fraction (2.5) stays, for the
    schema to refuse."""
    root = root or schema

    def resolved(schema):
        if "$ref" in schema:  # "#/$defs/NAME"
            return root["$defs"][schema["$ref"].rpartition("/")[2]]
        return schema

    schema = resolved(schema)
    if "anyOf" in schema:  # null or an object (`cache`): read by the branch the value fits
        branches = [resolved(branch) for branch in schema["anyOf"]]
        schema = (next((b for b in branches if b.get("type") == "object"), schema)
                  if isinstance(value, dict) else {"type": [b.get("type") for b in branches]})
    types = schema.get("type", "string")
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, extra)
            if isinstance(sub, dict):
                value[key] = typed(item, sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [typed(item, schema["items"], root) for item in value]
    elif isinstance(value, str) and types != "string":
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(parsed, str | dict | list) else typed(parsed, schema, root)
    elif isinstance(value, float) and value.is_integer() and "integer" in types:
        return int(value)
    return value


def default_filling(schema):
    """A validator of ``schema`` that fills in the defaults it passes: the recipe of jsonschema's
    FAQ that snakemake.utils.validate applies, built once. That function re-reads and re-parses
    the schema file on every call (50 ms), which made the presets alone cost most of a second at
    each parse of the Snakefile. Every number must also be finite, wherever the schema takes
    one: NaN and infinities pass JSON Schema's `number`, and no job can run on them."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import ValidationError

    check_properties = Draft202012Validator.VALIDATORS["properties"]
    check_type = Draft202012Validator.VALIDATORS["type"]

    def properties(validator, props, instance, schema):
        for name, sub in props.items() if isinstance(instance, dict) else ():
            if "default" in sub:
                instance.setdefault(name, sub["default"])
        yield from check_properties(validator, props, instance, schema)

    def finite_type(validator, types, instance, schema):
        numeric = {"number", "integer"} & set([types] if isinstance(types, str) else types)
        if numeric and type(instance) is float and not math.isfinite(instance):
            yield ValidationError(f"{instance} is not a finite number")
        elif numeric and type(instance) is int and not fits_a_float(instance):
            yield ValidationError("the integer is beyond the largest number a job reads "
                                  "(1.8e308)")
        else:
            yield from check_type(validator, types, instance, schema)

    def max_length(validator, most, instance, schema):
        if isinstance(instance, str) and len(instance) > most:
            yield ValidationError(f"{instance[:20]!r}... is {len(instance)} characters, longer "
                                  f"than {most}")

    return validators.extend(Draft202012Validator, {
        "properties": properties, "type": finite_type, "maxLength": max_length})(schema)


def fits_a_float(number):
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False


def validated(doc, validator, error=ConfigError):
    """``doc`` checked by ``validator`` (``default_filling``), its defaults filled; a failure
    raises ``error(key, message)``, the key dotted: one line instead of the whole schema dump.
    The error is jsonschema's best_match, as jsonschema.validate raises it: inside an anyOf (a
    null or an object, as `cache`) it names the object's own key, not "not valid under any"."""
    from jsonschema.exceptions import best_match

    err = best_match(validator.iter_errors(doc))
    if err is not None:
        raise error(".".join(map(str, err.absolute_path)), err.message)
    return doc


def deep_merge(base, over):
    """``base`` with ``over``'s keys set on it, nested mappings merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Workflow:
    """The files of a workflow folder that shape its configuration."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.schema = yaml.safe_load((self.folder / "schemas" / "config.schema.yaml").read_text())
        self.validator = default_filling(self.schema)
        self.presets = {p.stem: self._read_preset(p) for p in self._files("presets")}
        self.corpora = {p.stem: self._read_yaml(p) for p in self._files("corpora")}

    def _files(self, kind):
        return sorted((self.folder / kind).glob("*.yaml"), key=lambda p: p.stem)

    def _where(self, path):
        return f"{path.relative_to(self.folder.parent)}"

    def _read_yaml(self, path):
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict):
            raise RnnlmError(f"{self._where(path)}: expected a mapping of keys")
        return doc

    def _read_preset(self, path):
        """(the experiment, validated as one with the schema's defaults, its published numbers)"""
        exp = self._read_yaml(path)
        published = exp.pop("published", None) or {}

        def error(key, problem):
            return RnnlmError(f"preset {self._where(path)}: key {key or '(top level)'}: "
                              f"{problem} (keys and bounds as for experiments in "
                              "workflow/schemas/config.schema.yaml)")

        if not isinstance(published, dict):
            raise error("published", "expected a mapping of valid, test, source")
        for key, value in published.items():
            if key not in PUBLISHED_KEYS:
                raise error(f"published.{key}", "use valid, test, source")
            number = type(value) in (int, float) and value > 0
            if key != "source" and value is not None and not number:
                raise error(f"published.{key}", f"{value!r} is not a ppl > 0")
        doc = typed({"experiments": {path.stem: exp}}, self.schema)
        prefix = f"experiments.{path.stem}"
        validated(doc, self.validator,
                  lambda key, msg: error(key.removeprefix(prefix).lstrip("."), msg))
        return doc["experiments"][path.stem], published


def resolve(config, workflow):
    """The config as the workflow runs it: typed, validated, defaults filled, the presets named
    in ``run`` and every built-in corpus merged under the user's keys. Returns a new dict."""
    config = typed(copy.deepcopy(config), workflow.schema)
    own = copy.deepcopy(config)  # what the user set, before defaults fill the rest
    validated(config, workflow.validator)
    experiments = own.get("experiments") or {}
    bases = [sweep["base"] for sweep in [*config["sweeps"].values(), *config["tunes"].values()]]
    for name in dict.fromkeys([*config["run"], *bases]):
        if name in workflow.presets:  # validated again: the user's nested keys get defaults
            merged = {**workflow.presets[name][0], **experiments.get(name, {})}
            doc = validated({"experiments": {name: merged}}, workflow.validator)
            config["experiments"][name] = doc["experiments"][name]
    corpora = {**{name: {} for name in workflow.corpora}, **(own.get("corpora") or {})}
    config["corpora"] = {name: corpus(name, workflow.corpora.get(name, {}), over, workflow)
                         for name, over in corpora.items()}
    return config


def corpus(name, builtin, over, workflow):
    """One corpus definition: the built-in one under the user's keys, validated whole."""
    doc = {"corpora": {name: deep_merge(builtin, over or {})}}
    validated(doc, workflow.validator)
    spec = doc["corpora"][name]
    spec["digests"] = spec["digests"] or {}  # null: no digest to check, whatever the built-in's
    if not spec.get("url"):
        raise ConfigError(f"corpora.{name}.url", "missing: where the corpus comes from "
                          "(http(s)://, file:// or a directory)")
    if (spec.get("files") is None) == (spec.get("file") is None):
        raise ConfigError(f"corpora.{name}", "give either `files` (train, valid and test file "
                          "names) or `file` (one file, split by `split`)")
    return spec
