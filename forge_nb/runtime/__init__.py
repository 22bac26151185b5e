"""The runtime: App, workers, outcomes — on whatever asyncio loop is running."""
