"""Models that leave attnmt: a Transformer run exported for CTranslate2 (``ctranslate2``)
or for Hugging Face Transformers as a Pegasus model (``huggingface``)."""
