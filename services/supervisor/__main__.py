from services.supervisor.main import main

main()
