"""Model providers behind one seam, chosen by `[agent] provider`; each SDK is imported only when chosen.

base.py       the records of a conversation with one tool, and the Model Protocol
anthropic.py  the Anthropic Messages API
openai.py     OpenAI Chat Completions and Responses
litellm.py    any other provider through litellm
pricing.py    dollars per token: config, else litellm's price map read offline
registry.py   every provider, registered once by its adapter module
models.py     the configured model: checked, built and wrapped for a night
resilient.py  the one wrapper: retries, metering, call logging
"""
