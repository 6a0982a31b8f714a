"""The embedded local stack: stand-ins for AWS and OpenAI used by the demo and the tests."""
