from sft_local.openai_emulator.server import main

main()
