"""The Stripe pipeline, runnable from a checkout: the connection step first, then the loads.

    python pipelines/stripe_pipeline.py connect     # once: validate and store the credentials
    python pipelines/stripe_pipeline.py run         # every time: load what changed
    python pipelines/stripe_pipeline.py demo        # the local emulator, no Stripe account needed

The same as the installed `stripe-pipeline` command (`stripe_source.cli`); in your own code use the
source directly: see README, "Use it as a library".
"""

from stripe_source.cli import cli

if __name__ == "__main__":
    cli()
