"""File names inside a bundle (the names optimum-intel and openvino.genai use for VLM parts); which part each IR
holds, and its name everywhere else, is in ``ovexport.parts``."""

TEXT_EMBEDDINGS = "openvino_text_embeddings_model.xml"
LANGUAGE_MODEL = "openvino_language_model.xml"
IMAGE_ENCODER = "openvino_image_encoder_model.xml"
# an image encoder in two IRs: the file names openvino.genai's VLMPipeline opens
VISION_EMBEDDINGS = "openvino_vision_embeddings_model.xml"
RESAMPLER = "openvino_resampler_model.xml"
MANIFEST = "manifest.json"
VALIDATION = "validation.json"
COMPRESSION = "compression.json"


def ir_files(xml_name: str) -> tuple[str, str]:
    return xml_name, xml_name[:-4] + ".bin"
