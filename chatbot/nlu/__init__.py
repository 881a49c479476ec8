"""Natural-language understanding: the customer's intent, including out-of-scope detection."""

from chatbot.nlu.classifier import IntentClassifier, NluResult
from chatbot.nlu.labels import BANKING77_INTENTS, EXTRA_INTENTS, INTENTS, OUT_OF_SCOPE

__all__ = ["BANKING77_INTENTS", "EXTRA_INTENTS", "INTENTS", "OUT_OF_SCOPE", "IntentClassifier", "NluResult"]
