"""Options classes of the OCR engines: what the profile's `ocr:` section may set.

They live apart from the engines so the typed profile (``models.config``) can
validate them without importing any engine code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# A traineddata name; also keeps anything odd out of tesseract's -l argument.
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")]

# File names of the weights bundled in the rapidocr 3.10.0 wheel.
DET_MODEL_FILE = "PP-OCRv6_det_small.onnx"
REC_MODEL_FILE = "PP-OCRv6_rec_small.onnx"
CLS_MODEL_FILE = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"


Characters = Literal["ascii", "all"]
"""What RapidOCR's recogniser may write (see ``RapidOcrOptions.characters``)."""


class RapidOcrOptions(BaseModel):
    """The RapidOCR settings worth changing; everything else keeps RapidOCR's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_score: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Drop recognised lines scored below this."
    )
    det_thresh: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="Detector: pixel probability that counts as text."
    )
    box_thresh: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Detector: keep boxes whose mean score is above."
    )
    unclip_ratio: float = Field(
        default=1.6, gt=0.0, le=4.0, description="Detector: how far boxes grow around the text."
    )
    # Off by default: on upright receipts the per-line classifier flips a few lines
    # (e.g. "0.00" read as "00.0"); word F1 on 20 SROIE receipts 0.838 on, 0.846 off,
    # and it costs time. Turn it on for pages that may be upside down, or make the
    # page upright first with ``page_quarter_turns``.
    use_angle_cls: bool = Field(
        default=False, description="Turn lines read upside down (0/180 classifier per line)."
    )
    det_limit_side_len: int = Field(
        default=736, ge=32, le=4096, description="Detector input size bound (pixels)."
    )
    det_limit_type: Literal["min", "max"] = Field(
        default="min",
        description="'min': upscale so the short side is at least the limit; "
        "'max': downscale so the long side is at most the limit.",
    )
    max_side_len: int = Field(
        default=2000, ge=64, le=10000, description="Pages are downscaled to this long side first."
    )
    min_side_len: int = Field(
        default=30,
        ge=1,
        le=4096,
        description="Pages are upscaled to this short side first (small text reads better).",
    )
    intra_op_threads: int = Field(
        default=-1, ge=-1, description="onnxruntime threads per operator; -1 = all cores."
    )
    respace: bool = Field(
        default=True,
        description="Put back word spaces the recogniser dropped, where the crop shows a gap.",
    )
    characters: Characters = Field(
        default="ascii",
        description="What the recogniser may write: 'ascii' (letters, digits and punctuation "
        "of English and Malay print; where the model's first choice is an accent or another "
        "script, its likeliest ASCII character is taken) or 'all' (every character the model "
        "knows: accents, Chinese, Cyrillic...).",
    )
    find_colons: bool = Field(
        default=True,
        description="Add the lone colons the detector missed (two stacked dots between two "
        "fragments of a line).",
    )

    def rapidocr_params(self, model_dir: Path, onnxruntime: Any) -> dict[str, Any]:
        """The ``params`` dict RapidOCR's constructor expects (dotted config keys).

        ``onnxruntime`` is ``rapidocr.EngineType.ONNXRUNTIME``: RapidOCR insists on
        the enum, and taking it as an argument keeps rapidocr out of this import.
        """
        return {
            "Global.log_level": "warning",
            "Global.text_score": self.text_score,
            "Global.use_cls": self.use_angle_cls,
            "Global.max_side_len": self.max_side_len,
            "Global.min_side_len": self.min_side_len,
            # Per-character CTC positions, the evidence ``respace`` needs.
            "Global.return_word_box": self.respace,
            "Det.engine_type": onnxruntime,
            "Det.model_path": str(model_dir / DET_MODEL_FILE),
            "Det.thresh": self.det_thresh,
            "Det.box_thresh": self.box_thresh,
            "Det.unclip_ratio": self.unclip_ratio,
            "Det.limit_side_len": self.det_limit_side_len,
            "Det.limit_type": self.det_limit_type,
            "Cls.engine_type": onnxruntime,
            "Cls.model_path": str(model_dir / CLS_MODEL_FILE),
            "Rec.engine_type": onnxruntime,
            "Rec.model_path": str(model_dir / REC_MODEL_FILE),
            "EngineConfig.onnxruntime.intra_op_num_threads": self.intra_op_threads,
        }


class TesseractOptions(BaseModel):
    """How Tesseract is called: languages, page segmentation, engine mode, binary, timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    languages: list[LanguageCode] = Field(
        default_factory=lambda: ["eng"],
        min_length=1,
        description="Tesseract language codes (traineddata names), e.g. eng, rus.",
    )
    # 4 = "single column of text of variable sizes". Word F1 on 30 SROIE receipts:
    # psm 3 (automatic layout) 0.692, psm 4 0.701, psm 6 (one uniform block) 0.713,
    # but psm 6 invents words on noisy pages (heavy noise: psm 4 returns nothing,
    # psm 6 returns a page of garbage), so 4 is the default.
    psm: int = Field(default=4, ge=0, le=13, description="Page segmentation mode (--psm).")
    oem: int = Field(default=1, ge=0, le=3, description="Engine mode (--oem); 1 = LSTM only.")
    tesseract_cmd: str | None = Field(
        default=None, description="Path of the tesseract binary; default: found on PATH."
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Give up on one page after this.")

    def language_arg(self) -> str:
        return "+".join(self.languages)

    def config_arg(self) -> str:
        return f"--psm {self.psm} --oem {self.oem}"
