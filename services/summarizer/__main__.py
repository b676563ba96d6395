from services.summarizer.main import main

main()
