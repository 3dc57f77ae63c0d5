"""File names inside a bundle (the names optimum-intel and openvino.genai use for VLM parts)."""

TEXT_EMBEDDINGS = "openvino_text_embeddings_model.xml"
LANGUAGE_MODEL = "openvino_language_model.xml"
IMAGE_ENCODER = "openvino_image_encoder_model.xml"
MANIFEST = "manifest.json"
VALIDATION = "validation.json"
COMPRESSION = "compression.json"

# recipe `compression:` keys -> part names -> IR files
PART_OF_RECIPE_KEY = {"llm": "language_model", "image_encoder": "image_encoder", "text_embeddings": "text_embeddings"}
IR_OF_PART = {"language_model": LANGUAGE_MODEL, "image_encoder": IMAGE_ENCODER, "text_embeddings": TEXT_EMBEDDINGS}


def ir_files(xml_name: str) -> tuple[str, str]:
    return xml_name, xml_name[:-4] + ".bin"
