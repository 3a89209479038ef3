#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into tests/fuzz/corpus/{spec,csv,spec_json}.

Run once after changing a seed (needs protoc, from protobuf-compiler); the
output is committed. Files named regression-* are crash inputs kept by hand
and are never touched here.

- spec/: serialized JobSpecs. Every example under examples/ (with at most 16
  steps, so that the fuzzer's tight limits admit it and it trains), plus
  edge cases written below in protobuf's text format.
- csv/: two option bytes (flags: 1 header, 2 regression, 4 label column
  scaled by 2^24; then the label column as int8) and a CSV document.
- spec_json/: the examples as they are, plus malformed documents.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
ENUM_FIELDS = {"kind", "activation", "scheme", "loss", "batch_norm",
               "precision", "action"}
MAX_STEPS = 16


def text_string(value):
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in "\"\\":
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append("\\%03o" % byte)
    return '"' + "".join(out) + '"'


def to_text(obj):
    """protobuf JSON (snake_case names) as text format."""
    parts = []
    for key, value in obj.items():
        if key == "labels":
            for k, v in value.items():
                parts.append("labels { key: %s value: %s }" %
                             (text_string(k), text_string(v)))
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                parts.append("%s { %s }" % (key, to_text(item)))
            elif isinstance(item, bool):
                parts.append("%s: %s" % (key, "true" if item else "false"))
            elif isinstance(item, str):
                literal = item if key in ENUM_FIELDS else text_string(item)
                parts.append("%s: %s" % (key, literal))
            else:
                parts.append("%s: %r" % (key, item))
    return " ".join(parts)


def encode(text):
    return subprocess.run(
        ["protoc", "-I", str(ROOT / "proto"), "--encode=gradwatch.v1.JobSpec",
         "gradwatch/v1/spec.proto"],
        input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


# Edge cases: each valid one trains under the fuzzer's limits; each invalid
# one stops at a different rule.
SPEC_EDGES = {
    "valid-inline-mse": """
        data { inline {
          examples { x: [0.5, -1] y: [1] } examples { x: [1, 2] y: [-1] }
          examples { x: [-3, 0.25] y: [0.5] } examples { x: [2, 2] y: [0] } } }
        model { layers { units: 4 activation: TANH } layers { units: 1 } }
        loss: MSE training { steps: 4 batch_size: 2 }""",
    "valid-csv-bce-header": """
        data { csv { content: "a,b,y\\n1,2,0\\n3,4,1\\n5,6,0\\n7,8,1\\n"
                     header: true label_column: -1 } }
        model { layers { units: 3 activation: SIGMOID } layers { units: 1 } }
        loss: BINARY_CROSS_ENTROPY training { epochs: 2 batch_size: 2 }""",
    "valid-blobs-adam-bn-validation": """
        data { synthetic { kind: BLOBS samples: 120 features: 5 classes: 4 }
               validation_fraction: 0.25 }
        model { layers { units: 8 activation: ELU elu_alpha: 0.5
                         batch_norm: BEFORE_ACTIVATION }
                layers { units: 4 } }
        loss: CROSS_ENTROPY
        optimizer { kind: ADAM beta1: 0.8 schedule { kind: COSINE
                    warmup_steps: 2 min_lr_fraction: 0.1 } }
        training { steps: 6 batch_size: 16 seed: 3 }
        monitoring { validation_every: 2 dataset_sweep_every: 3
                     histograms { enabled: true bins: 8 min: -2 max: 2 } }""",
    "valid-teacher-student-rmsprop-curvature": """
        data { synthetic { kind: TEACHER_STUDENT samples: 64 features: 3
                           classes: 2 noise: 0.1 } }
        model { layers { units: 6 activation: GELU } layers { units: 2 } }
        loss: MSE
        optimizer { kind: RMSPROP rmsprop_alpha: 0.9 clip_grad_norm: 1 }
        training { steps: 3 batch_size: 8 flush_denormals: true }
        monitoring { curvature_every: 2 curvature_iterations: 3 }""",
    "valid-initial-weights-step-schedule": """
        data { synthetic { kind: XOR samples: 16 } }
        model { layers { units: 2 activation: LEAKY_RELU negative_slope: 0.1 }
                layers { units: 2 }
                initial_weights { inputs: 2 units: 2 weights: [1, -1, -1, 1]
                                  bias: [0, 0] }
                initial_weights { inputs: 2 units: 2 weights: [1, 0, 0, 1]
                                  bias: [0.5, -0.5] } }
        loss: CROSS_ENTROPY
        optimizer { momentum: 0.5 nesterov: true weight_decay: 0.01
                    schedule { kind: STEP step_size: 1 gamma: 0.5 } }
        training { steps: 3 batch_size: 4 precision: BF16 }""",
    "valid-subnormal-elu-alpha-flushed": """
        data { synthetic { kind: BLOBS samples: 64 features: 1 classes: 4 } }
        model { layers { units: 8 activation: ELU elu_alpha: 1e-39
                         batch_norm: BEFORE_ACTIVATION }
                layers { units: 4 } }
        loss: CROSS_ENTROPY
        training { steps: 3 batch_size: 16 flush_denormals: true }""",
    "valid-rules-stop-job-step-activation": """
        data { synthetic { kind: MOONS samples: 32 } }
        model { layers { units: 4 activation: STEP init { scheme: CONSTANT
                                                          gain: 0 } }
                layers { units: 2 init { scheme: ZEROS } } }
        loss: CROSS_ENTROPY training { steps: 4 batch_size: 8 }
        monitoring { rules { dead_relu { threshold: 0 action: STOP_JOB }
                             unchanged_weights { for_steps: 1 }
                             weight_update_ratio { threshold: 1
                                                   threshold_low: 0.5 } } }""",
    "valid-diverges-overflowing-features": """
        data { inline { examples { x: [3e38, -3e38] label: 0 }
                        examples { x: [-3e38, 3e38] label: 1 } } }
        model { layers { units: 2 activation: LINEAR init { scheme: CONSTANT
                                                            gain: 1000 } }
                layers { units: 2 } }
        loss: CROSS_ENTROPY training { steps: 8 batch_size: 2 }""",
    "invalid-inline-nan-feature": """
        data { inline { examples { x: [nan, 1] label: 0 }
                        examples { x: [1, 1] label: 1 } } }
        model { layers { units: 2 } } loss: CROSS_ENTROPY""",
    "invalid-inline-label-out-of-range": """
        data { inline { examples { x: [0, 1] label: 0 }
                        examples { x: [1, 1] label: 7 } } }
        model { layers { units: 2 } } loss: CROSS_ENTROPY""",
    "invalid-csv-header-only": """
        data { csv { content: "a,b,label\\n" header: true } }
        model { layers { units: 2 } } loss: CROSS_ENTROPY""",
    "invalid-csv-label-column-out-of-range": """
        data { csv { content: "1,2,0\\n3,4,1\\n" label_column: 3 } }
        model { layers { units: 2 } } loss: CROSS_ENTROPY""",
    "invalid-huge-layers": """
        data { synthetic { kind: SPIRALS } }
        model { layers { units: 65536 activation: RELU }
                layers { units: 65536 activation: RELU } layers { units: 3 } }
        loss: CROSS_ENTROPY training { steps: 9223372036854775807 }""",
    "invalid-subnormal-validation-fraction": """
        data { synthetic { kind: MOONS samples: 40 }
               validation_fraction: 1e-310 }
        model { layers { units: 2 } } loss: CROSS_ENTROPY
        training { steps: 2 batch_size: 4 flush_denormals: true }""",
    "invalid-steps-and-epochs": """
        data { synthetic { kind: SPIRALS } }
        model { layers { units: 3 } } loss: CROSS_ENTROPY
        training { steps: 10 epochs: 1 }""",
    "invalid-histogram-range": """
        data { synthetic { kind: SPIRALS } }
        model { layers { units: 3 } } loss: CROSS_ENTROPY
        monitoring { histograms { min: 1 max: -1 } }""",
}

CSV_SEEDS = {
    "header-label-last": (1, -1, "a,b,label\n1,2,0\n3.5,-4e-1,1\n"),
    "label-first": (0, 0, "2,1.5,2.5\n0,3,4\n"),
    "target-middle-for-mse": (2, 1, "1,0.5,2\n3,-1.25,4\n"),
    "crlf-blank-lines-bom": (0, -1, "\ufeff1,2,0\r\n\r\n  3 , 4 ,1\r\n"),
    "label-as-float": (0, -1, "1,2,3.0\n4,5,0.0\n"),
    "header-only": (1, -1, "a,b,label\n"),
    "empty-label-column": (0, -1, "1,2,\n3,4,\n"),
    "ragged-rows": (0, -1, "1,2,0\n3,4\n"),
    "nan-and-inf": (2, -1, "nan,1,2\ninf,1e39,-inf\n"),
    "negative-label": (0, -1, "1,2,-1\n"),
    "label-too-large": (0, -1, "1,2,2147483648\n"),
    "label-column-int32-min": (4, -128, "1,2,0\n"),
    "one-field": (0, 0, "5\n6\n"),
    "quoted-field": (0, -1, "\"1\",2,0\n"),
    "whitespace-only": (1, 0, " \t\n\r\n"),
}

JSON_EDGES = {
    "syntax-missing-brace.json": '{"model": {"layers": [{"units": 3}]}\n',
    "syntax-trailing-garbage.json": '{"loss": "MSE"} x\n',
    "syntax-bare-keys-single-quotes.json":
        "{model: {layers: [{units: 2, activation: 'RELU',}]}}\n",
    "unknown-field.json": '{"model": {"layers": [{"unitz": 3}]}}\n',
    "unknown-top-level-field.json": '{"epochs": 3}\n',
    "bad-enum.json": '{"loss": "HINGE"}\n',
    "wrong-type.json": '{"training": {"steps": "many"}}\n',
    "camel-case-and-nan.json":
        '{"model": {"initialWeights": [{"weights": ["NaN", 1]}]}}\n',
    "utf8-before-error.json":
        '{"name": "d\u00e9j\u00e0 vu \u2713",\n\t"loss": CROSS}\n',
    "not-an-object.json": "[1, 2, 3]\n",
    "empty.json": "",
    "deep-nesting.json": "[" * 120 + "]" * 120 + "\n",
    "octal-number.json": '{"training": {"steps": 017}}\n',
    "negative-zero-and-map-order.json":
        '{"labels": {"b": "1", "a": "2"},'
        ' "model": {"layers": [{"init": {"bias": -.0}}]}}\n',
    "duplicate-snippet.json":
        '{"labels": {"a": "x"},\n "labels": {"a": "x"}, "labels" 1}\n',
}


def clear(directory):
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        if not path.name.startswith("regression-"):
            path.unlink()


def main():
    examples = sorted((ROOT / "examples").rglob("*.json"))
    spec_dir, csv_dir, json_dir = (CORPUS / n for n in ("spec", "csv",
                                                         "spec_json"))
    for directory in (spec_dir, csv_dir, json_dir):
        clear(directory)

    for path in examples:
        name = "example-" + path.stem.replace("_", "-")
        spec = json.loads(path.read_text())
        training = spec.setdefault("training", {})
        training["steps"] = min(int(training.get("steps", MAX_STEPS)),
                                MAX_STEPS)
        (spec_dir / (name + ".pb")).write_bytes(encode(to_text(spec)))
        (json_dir / (name + ".json")).write_bytes(path.read_bytes())
    for name, text in SPEC_EDGES.items():
        (spec_dir / (name + ".pb")).write_bytes(encode(text))

    for name, (flags, column, content) in CSV_SEEDS.items():
        data = bytes([flags, column & 0xFF]) + content.encode("utf-8")
        (csv_dir / name).write_bytes(data)

    for name, text in JSON_EDGES.items():
        (json_dir / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
